import { parsePartition, type PartitionRef } from './layout';
import { DATASETS } from './schema';
import type { ObjectStore } from './store/types';

/** Every partition in the archive that holds at least one object, read from the folder layout. */
export async function listPartitions(store: ObjectStore): Promise<PartitionRef[]> {
  const out: PartitionRef[] = [];
  for (const dataset of DATASETS) {
    for (const region of await store.listPrefixes(`${dataset}/`)) {
      for (const date of await store.listPrefixes(region)) {
        const ref = parsePartition(date);
        // Some S3-compatible servers keep an emptied "folder" listed (SeaweedFS's filer does).
        if (ref && (await store.list(date, 1)).length > 0) out.push(ref);
      }
    }
  }
  return out;
}
