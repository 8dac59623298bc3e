"""Reading and writing Philips Pinnacle3 patient trees (docs/contracts.md §1)."""
