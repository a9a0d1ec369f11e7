"""Model definitions. They know nothing of experiments, configs or files."""
