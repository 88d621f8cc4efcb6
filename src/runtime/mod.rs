//! Disposable database instances (placeholder; owned by the runtime work).
