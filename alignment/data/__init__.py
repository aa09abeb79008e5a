"""Training data: packaged offline sets, user files, refusal bank, benign prompts, and the builder."""
