"""Offline rendering of the `dvc plots` page.

DVC's page loads Vega from a CDN, so it stays blank without a network. We give
`dvc plots show` an HTML template that carries the Vega, Vega-Lite and Vega-Embed
libraries inline (the bundle vl-convert ships), so the page works anywhere.
"""

from __future__ import annotations

import functools

import vl_convert

PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>srlm plots</title>
<script type="text/javascript">
(function () {{
{bundle}
}})();
</script>
<style>body {{ font-family: sans-serif; }} div[id] {{ display: inline-block; margin: 12px; vertical-align: top; }}</style>
</head>
<body>
{{plot_divs}}
</body>
</html>
"""


@functools.cache
def vega_bundle() -> str:
    """Vega-Embed with Vega and Vega-Lite; it sets window.vegaEmbed as DVC's page expects."""
    return vl_convert.javascript_bundle()


def html_template() -> str:
    # The bundle runs inside a function so its top-level names cannot clash with DVC's `var spec`.
    return PAGE.format(bundle=vega_bundle())
