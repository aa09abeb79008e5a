"""Offline evaluation of safety depth: prefilling attacks, per-token KL, fine-tuning attacks,
over-refusal and utility, recovery onsets, reports and the retraining gate (`deepguard eval`)."""
