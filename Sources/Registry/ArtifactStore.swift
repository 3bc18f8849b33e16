// The artifact store.
