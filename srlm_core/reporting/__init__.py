"""What a run measured: reward-modelling metrics (`rm_metrics`), win rates (`win_rate`), diffs
between iterations (`diff`), the run summary (`summary`), plots and the report."""
