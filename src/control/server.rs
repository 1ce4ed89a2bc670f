//! The control socket server (pending).
