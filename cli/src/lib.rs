//! The parts of the `koreo` command that other tools (the fuzz targets) exercise directly.

pub mod graph;
pub mod render;
