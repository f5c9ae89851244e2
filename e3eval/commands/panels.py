"""The option panels of every command's `--help`, one vocabulary across commands (`rich_help_panel=`).

An option belongs to the panel a user looks in first: what runs (model and engine), on what (data and prompt), how
far (budgets and sampling), forced how (forcing), graded and summarised how (scoring), and where results go
(output). Options left without a panel fall under typer's own "Options" (help, and flags of rare use).
"""

from __future__ import annotations

MODEL = "Model and engine"
DATA = "Data and prompt"
BUDGETS = "Budgets and sampling"
FORCING = "Forcing"
SCORING = "Scoring"
OUTPUT = "Output"
