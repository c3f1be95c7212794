"""Exchange Web Services: what Exchange sends us, what we answer, and how we call it."""
