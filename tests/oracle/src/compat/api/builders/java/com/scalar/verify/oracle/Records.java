package com.scalar.verify.oracle;

import com.scalar.db.api.Delete;
import com.scalar.db.api.DistributedStorage;
import com.scalar.db.api.Get;
import com.scalar.db.api.Put;
import com.scalar.db.api.Result;
import com.scalar.db.api.Scan;
import com.scalar.db.api.TableMetadata;
import com.scalar.db.io.Column;
import com.scalar.db.io.Key;
import com.scalar.db.service.StorageFactory;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

/**
 * Operations and values in the record API of ScalarDB 3.6 and later (builders, {@code Column}):
 * src/compat/api/builders, shared by every line from 3.6; 3.4's Value API has its own copy
 * (src/compat/api/values). Keys render as the contract says: integers in decimal, TEXT as is,
 * BOOLEAN true/false, BLOB hex, NULL as null.
 */
final class Records {
  private Records() {}

  /** The real storage adapter of {@code props}, for raw reads. */
  static DistributedStorage openStorage(Properties props) {
    return StorageFactory.create(props).getStorage();
  }

  static Put put(String ns, String table, Key pk, Key ck, Cells cells) {
    var b = Put.newBuilder().namespace(ns).table(table).partitionKey(pk);
    if (ck != null) {
      b = b.clusteringKey(ck);
    }
    for (Cells.Cell c : cells.list()) {
      switch (c.type()) {
        case BIGINT:
          b = b.bigIntValue(c.name(), (Long) c.value());
          break;
        case INT:
          b = b.intValue(c.name(), (Integer) c.value());
          break;
        case BOOLEAN:
          b = b.booleanValue(c.name(), (Boolean) c.value());
          break;
        case DOUBLE:
          b = b.doubleValue(c.name(), (Double) c.value());
          break;
        case BLOB:
          b = b.blobValue(c.name(), (byte[]) c.value());
          break;
        default:
          b = b.textValue(c.name(), (String) c.value());
      }
    }
    return b.build();
  }

  static Get get(String ns, String table, Key pk, Key ck) {
    var b = Get.newBuilder().namespace(ns).table(table).partitionKey(pk);
    return ck == null ? b.build() : b.clusteringKey(ck).build();
  }

  static Delete delete(String ns, String table, Key pk, Key ck) {
    var b = Delete.newBuilder().namespace(ns).table(table).partitionKey(pk);
    return ck == null ? b.build() : b.clusteringKey(ck).build();
  }

  /** Scans that together read every record of the table: one Scan all. */
  static List<Scan> scans(Properties props, String ns, String table, TableMetadata md) {
    return List.of(Scan.newBuilder().namespace(ns).table(table).all().build());
  }

  static long bigInt(Result r, String name) {
    return r.getBigInt(name);
  }

  static int integer(Result r, String name) {
    return r.getInt(name);
  }

  /** Every column of a result, rendered. */
  static Map<String, String> render(Result r) {
    Map<String, String> out = new LinkedHashMap<>();
    r.getColumns().forEach((name, c) -> out.put(name, renderValue(c)));
    return out;
  }

  /** A key's columns in key order, rendered. */
  static Map<String, String> render(Key k) {
    Map<String, String> out = new LinkedHashMap<>();
    for (Column<?> c : k.getColumns()) {
      out.put(c.getName(), renderValue(c));
    }
    return out;
  }

  /** The values a Put writes, rendered (a column set to NULL maps to null). */
  static Map<String, String> written(Put p) {
    Map<String, String> out = new LinkedHashMap<>();
    p.getColumns().forEach((name, c) -> out.put(name, renderValue(c)));
    return out;
  }

  private static String renderValue(Column<?> c) {
    if (c.hasNullValue()) {
      return null;
    }
    switch (c.getDataType()) {
      case INT:
        return Integer.toString(c.getIntValue());
      case BIGINT:
        return Long.toString(c.getBigIntValue());
      case TEXT:
        return c.getTextValue();
      case BOOLEAN:
        return Boolean.toString(c.getBooleanValue());
      case BLOB:
        StringBuilder sb = new StringBuilder();
        for (byte b : c.getBlobValueAsBytes()) {
          sb.append(String.format("%02x", b));
        }
        return sb.toString();
      default:
        return String.valueOf(c.getValueAsObject());
    }
  }
}
