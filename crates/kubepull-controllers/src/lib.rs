//! kubepull-controllers (in progress).
