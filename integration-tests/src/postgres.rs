//! A throwaway PostgreSQL 15 server for tests.
