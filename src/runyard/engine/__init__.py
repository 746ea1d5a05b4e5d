"""The scheduler service: runs pipeline graphs, decides reuse, recovers after a crash."""
