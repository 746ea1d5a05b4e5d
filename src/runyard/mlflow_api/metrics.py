"""(being written for issue 16)"""
