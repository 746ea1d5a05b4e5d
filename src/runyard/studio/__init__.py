"""The studio: server-rendered pages over the same store the API serves.

Pages are Jinja2 templates; a small hand-written script (static/studio.js) draws charts with the
plotly.js that ships inside the installed `plotly` package and keeps pages live through
Server-Sent Events. There is no JavaScript build step.
"""

from runyard.studio.app import install_studio

__all__ = ["install_studio"]
