"""deepguard alignment: safety-recovery data, deep and constrained fine-tuning, evaluation, export."""
