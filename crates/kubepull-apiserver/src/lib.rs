//! kubepull-apiserver (in progress).
