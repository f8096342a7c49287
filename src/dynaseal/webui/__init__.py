"""What the gateway's and the backend's web consoles share: server-side login sessions
and CSRF tokens, the security headers, the page templates and their static files
(htmx, vendored), server-rendered SVG charts and time buckets.

Pages are rendered on the server (Jinja2) and work without JavaScript; htmx (shipped
in ``static/``, never fetched at run time) only makes navigation and forms smoother.
Nothing runs inline, so the Content-Security-Policy allows scripts and styles from the
console's own origin only.
"""
