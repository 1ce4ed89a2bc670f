//! The control socket client (pending).
