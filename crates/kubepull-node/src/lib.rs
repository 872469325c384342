//! kubepull-node (in progress).
