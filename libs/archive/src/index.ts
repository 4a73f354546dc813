// The archive's format, shared by the archiver that writes it and the tools that read it (the
// `sluice` CLI's replay): file schema and codecs, object layout, manifests and the object stores.
export * from './catalog';
export * from './errors';
export * from './layout';
export * from './manifest';
export * from './reader';
export * from './schema';
export * from './seqset';
export * from './store';
