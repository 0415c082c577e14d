"""Small shared utilities: atomic file writes, JSONL, torch.distributed helpers."""
