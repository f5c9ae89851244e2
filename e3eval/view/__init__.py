"""`e3eval view`: a local, read-only web app over run directories, to read every trace at every budget.

The data layer: `index.py` finds a stored sample without reading the rollouts table (`SampleIndex`); `viewed_run.py`
holds one run's index, tokenizer and small tables (grades, forced answers, probe rows), re-read when they change;
`sample_text.py` places a sample's budget cuts, inserted waits and per-token heat on its text; `payload.py` builds the
JSON the pages read (runs, problems, one sample, one problem across runs). The server and the pages are `server.py`
and `assets/`. Nothing here writes to a run.
"""
