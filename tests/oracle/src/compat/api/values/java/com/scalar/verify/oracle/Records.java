package com.scalar.verify.oracle;

import com.scalar.db.api.Delete;
import com.scalar.db.api.DistributedStorage;
import com.scalar.db.api.Get;
import com.scalar.db.api.Put;
import com.scalar.db.api.Result;
import com.scalar.db.api.Scan;
import com.scalar.db.api.TableMetadata;
import com.scalar.db.config.DatabaseConfig;
import com.scalar.db.io.BigIntValue;
import com.scalar.db.io.BlobValue;
import com.scalar.db.io.BooleanValue;
import com.scalar.db.io.IntValue;
import com.scalar.db.io.Key;
import com.scalar.db.io.TextValue;
import com.scalar.db.io.Value;
import com.scalar.db.service.StorageFactory;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.stream.Collectors;

/**
 * Operations and values in ScalarDB 3.4's record API ({@code new Put(pk, ck).withValue(..)},
 * {@code Value}): the counterpart of src/compat/api/builders. 3.4 has no Scan without a partition
 * key, so {@link #scans} reads the table's partition keys over plain JDBC (PostgreSQL quoting:
 * 3.4 runs on PostgreSQL only here) and scans each partition.
 */
final class Records {
  private Records() {}

  /** The real storage adapter of {@code props}, for raw reads. */
  static DistributedStorage openStorage(Properties props) {
    return new StorageFactory(new DatabaseConfig(props)).getStorage();
  }

  static Put put(String ns, String table, Key pk, Key ck, Cells cells) {
    Put p = (ck == null ? new Put(pk) : new Put(pk, ck)).forNamespace(ns).forTable(table);
    for (Cells.Cell c : cells.list()) {
      switch (c.type()) {
        case BIGINT:
          p = p.withValue(c.name(), (long) (Long) c.value());
          break;
        case INT:
          p = p.withValue(c.name(), (int) (Integer) c.value());
          break;
        case BOOLEAN:
          p = p.withValue(c.name(), (boolean) (Boolean) c.value());
          break;
        case DOUBLE:
          p = p.withValue(c.name(), (double) (Double) c.value());
          break;
        case BLOB:
          p = p.withValue(c.name(), (byte[]) c.value());
          break;
        default:
          p = p.withValue(c.name(), (String) c.value());
      }
    }
    return p;
  }

  static Get get(String ns, String table, Key pk, Key ck) {
    return (ck == null ? new Get(pk) : new Get(pk, ck)).forNamespace(ns).forTable(table);
  }

  static Delete delete(String ns, String table, Key pk, Key ck) {
    return (ck == null ? new Delete(pk) : new Delete(pk, ck)).forNamespace(ns).forTable(table);
  }

  /** Scans that together read every record of the table: one per partition key in the database. */
  static List<Scan> scans(Properties props, String ns, String table, TableMetadata md)
      throws Exception {
    List<String> names = new ArrayList<>(md.getPartitionKeyNames());
    String sql =
        "SELECT DISTINCT "
            + names.stream().map(n -> "\"" + n + "\"").collect(Collectors.joining(", "))
            + " FROM \"" + ns + "\".\"" + table + "\"";
    List<Scan> out = new ArrayList<>();
    try (Connection c =
            DriverManager.getConnection(
                props.getProperty(DatabaseConfig.CONTACT_POINTS),
                props.getProperty(DatabaseConfig.USERNAME),
                props.getProperty(DatabaseConfig.PASSWORD));
        Statement st = c.createStatement();
        ResultSet rs = st.executeQuery(sql)) {
      while (rs.next()) {
        Key.Builder k = Key.newBuilder();
        for (int i = 0; i < names.size(); i++) {
          String n = names.get(i);
          switch (md.getColumnDataType(n)) {
            case INT:
              k.addInt(n, rs.getInt(i + 1));
              break;
            case BIGINT:
              k.addBigInt(n, rs.getLong(i + 1));
              break;
            case TEXT:
              k.addText(n, rs.getString(i + 1));
              break;
            default:
              throw new IllegalArgumentException("partition key type of " + n);
          }
        }
        out.add(new Scan(k.build()).forNamespace(ns).forTable(table));
      }
    }
    return out;
  }

  static long bigInt(Result r, String name) {
    return r.getValue(name).map(Value::getAsLong).orElse(0L);
  }

  static int integer(Result r, String name) {
    return r.getValue(name).map(Value::getAsInt).orElse(0);
  }

  /** Every column of a result, rendered. */
  static Map<String, String> render(Result r) {
    Map<String, String> out = new LinkedHashMap<>();
    r.getValues().forEach((name, v) -> out.put(name, renderValue(v)));
    return out;
  }

  /** A key's columns in key order, rendered. */
  static Map<String, String> render(Key k) {
    Map<String, String> out = new LinkedHashMap<>();
    for (Value<?> v : k.get()) {
      out.put(v.getName(), renderValue(v));
    }
    return out;
  }

  /** The values a Put writes, rendered (a NULL TEXT or BLOB maps to null). */
  static Map<String, String> written(Put p) {
    Map<String, String> out = new LinkedHashMap<>();
    p.getValues().forEach((name, v) -> out.put(name, renderValue(v)));
    return out;
  }

  /**
   * 3.4 has NULL only for TEXT and BLOB values (empty Optional); a NULL INT, BIGINT or BOOLEAN
   * read from storage is its zero value.
   */
  private static String renderValue(Value<?> v) {
    if (v instanceof IntValue) {
      return Integer.toString(v.getAsInt());
    }
    if (v instanceof BigIntValue) {
      return Long.toString(v.getAsLong());
    }
    if (v instanceof BooleanValue) {
      return Boolean.toString(v.getAsBoolean());
    }
    if (v instanceof TextValue) {
      return ((TextValue) v).getString().orElse(null);
    }
    if (v instanceof BlobValue) {
      return ((BlobValue) v)
          .get()
          .map(
              bytes -> {
                StringBuilder sb = new StringBuilder();
                for (byte b : bytes) {
                  sb.append(String.format("%02x", b));
                }
                return sb.toString();
              })
          .orElse(null);
    }
    return String.valueOf(v.get());
  }
}
