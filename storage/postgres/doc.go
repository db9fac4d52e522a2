// Package postgres is the PostgreSQL backend of package storage, built on pgx and its
// connection pool. Its schema lives in migrations/postgres and is applied by Migrate.
package postgres
