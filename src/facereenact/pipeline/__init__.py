"""The reenactment pipeline: one animation's request, the Reenactor (crop, generate, paste back), and per-process caches of what it loads."""
