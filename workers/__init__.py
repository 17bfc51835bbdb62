"""The worker fleet: capability-routed RQ workers, heartbeat registry, reaper."""
