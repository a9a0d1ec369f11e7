"""Studies: one experiment over a grid of settings (`--sweep`), each cell under its seeds, run by a
launcher (in this process, or worker processes) into a study folder that records every job's state,
resumes what did not finish, and summarises each headline against each swept setting.

grid.py parses the sweep and resolves every cell before anything starts; record.py is study.json;
launchers.py runs jobs; engine.py creates, runs, resumes and cancels a study; summary.py writes
summary.md / summary.json and the figures."""
