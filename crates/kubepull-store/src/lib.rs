//! kubepull-store (in progress).
