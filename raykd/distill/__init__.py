"""The plain-PyTorch distillation loop and what surrounds it; nothing here knows about Ray."""
