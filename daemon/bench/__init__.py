"""`posd bench`: speed and memory figures, one JSON object, measured not asserted.

Each module here measures one area and returns a flat dict of figures.
"""
