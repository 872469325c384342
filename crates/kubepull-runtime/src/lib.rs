//! kubepull-runtime (in progress).
