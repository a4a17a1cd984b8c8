"""`posd provision` and `posd devices`: setting a terminal up from its answers.

`inventory` lists the devices by stable name; `prompts` asks the engineer; `plan` checks
the answers the way `posd run` will and writes the configuration, the broker's files and
the ledger.
"""
