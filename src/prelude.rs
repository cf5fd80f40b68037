//! Everything a user needs, in one import.
