"""The HTML report of a pipeline run: one self-contained page (plots and images embedded).

:func:`~failurelens.report.html.render_report` turns a report document (plain JSON-able data, see
:mod:`failurelens.report.html`) and the bytes of the images it names into the page. No storage, no
network: the caller loads the images.
"""

from failurelens.report.html import render_report

__all__ = ["render_report"]
