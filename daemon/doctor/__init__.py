"""`posd doctor`: a self-test of everything a lane depends on, one finding per check.

`checkup.run_doctor` runs the checks (`devices`, `broker`, `system`) side by side, each
within its own deadline, and `checkup.render` says what to do about each finding.
"""
