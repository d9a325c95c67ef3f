//! The Koreo expression function library.
