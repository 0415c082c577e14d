"""The application layer: runs the stages end to end (``fstmatch demo``), one run or a multi-seed
study, resumable stage by stage. Above every stage (synth, data, train, hypotheses, report); nothing
below imports it."""
