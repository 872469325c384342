//! Go `encoding/json` compatibility.

pub mod decode;
pub mod encode;
