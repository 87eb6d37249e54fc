//! The event-sourced order store: domain, events, recovery, compactor, async API and analytics. Arrives with its issue.
