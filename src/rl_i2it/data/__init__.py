"""Dataset readers and the offline sources (DESIGN.md section 4)."""
