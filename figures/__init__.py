"""The e3 paper's data-drawn figures: one module per figure family, the YAML spec, the registry and the gallery.

`family.py` is the contract, `registry.py` names the families, `spec.py` validates `e3eval figures SPEC.yaml`,
`gallery.py` renders a spec into PDF/PNG files with an index.html, `style.py` holds the shared look and `paper.py`
the figures drawn from the authors' published tables. Importing the package loads nothing heavy; the command line is
`e3eval figures` (`e3eval/commands/figures.py`).
"""
