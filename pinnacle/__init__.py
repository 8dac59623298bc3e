"""Reading and writing Philips Pinnacle3 patient trees (SPEC section 1)."""
