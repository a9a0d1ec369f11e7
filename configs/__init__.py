"""The default experiment configs (YAML), shipped inside the package as atml.configs."""
