"""An example cp-bench plugin (tests/plugin_example): one attack, one victim algorithm."""
