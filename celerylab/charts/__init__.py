"""Figures as plain functions ``DataFrame -> plotly.graph_objects.Figure``.

One module per subject (``overview``, ``functions``, ``diff``, ``hotspots``, ``drilldown``, ``calltree``); import
the function from its module.  The report, the CLI and the widgets all draw with these, and tests assert on
``fig.data``, not on pixels.
"""
