"""Microsoft Graph change notifications: what Graph posts to us, and how we call Graph."""
