package com.scalar.verify.oracle;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

/**
 * A ScalarDB feature a whole generation runs with ({@code generate --variant NAME}), on top of
 * each case's own settings: every case of the run gets its properties and table options, and
 * its name gets the variant as a prefix ({@code sqlite-3.17.5-decoupled-mixed}). So a case of
 * {@link Scenarios} is reused under a feature without a copy of it.
 */
enum Variant {
  /** Each case as {@link Scenarios} defines it. */
  NONE("", "3.0", Map.of(), Map.of()),
  /** 3.16+: records written COMMITTED directly, no Coordinator row, when one group holds all. */
  ONE_PHASE(
      "one-phase",
      "3.16",
      Map.of("scalar.db.consensus_commit.one_phase_commit.enabled", "true"),
      Map.of()),
  /** 3.16+: a read-only transaction writes a COMMITTED row again (the omission is the default). */
  NO_WRITE_OMISSION(
      "no-write-omission",
      "3.16",
      Map.of("scalar.db.consensus_commit.coordinator.write_omission_on_read_only.enabled", "false"),
      Map.of()),
  /** 3.19+: the Coordinator logs every transaction's write set (tx_write_set). */
  WRITE_SET(
      "write-set",
      "3.19",
      Map.of("scalar.db.consensus_commit.coordinator.write_set_logging.enabled", "true"),
      Map.of()),
  /**
   * 3.17+, JDBC: every table's data in {@code <t>_data}, its metadata in {@code <t>_tx_metadata},
   * and a view under the table's name.
   */
  DECOUPLED("decoupled", "3.17", Map.of(), Map.of("transaction-metadata-decoupling", "true"));

  final String prefix;
  private final String since;
  private final Map<String, String> properties;
  private final Map<String, String> tableOptions;

  private static volatile Variant current = NONE;
  private static volatile String backend = "sqlite";

  Variant(String prefix, String since, Map<String, String> properties, Map<String, String> tableOptions) {
    this.prefix = prefix;
    this.since = since;
    this.properties = properties;
    this.tableOptions = tableOptions;
  }

  static Variant parse(String name) {
    for (Variant v : values()) {
      if (v.prefix.equals(name) || (v == NONE && name.equals("none"))) {
        return v;
      }
    }
    throw new IllegalArgumentException(
        "unknown variant " + name + " (none, one-phase, no-write-omission, write-set, decoupled)");
  }

  /** Selects the run's variant; refuses one the line does not have. */
  static void select(Variant v, String version, String backend) {
    String[] s = v.since.split("\\.");
    if (!Versions.atLeast(version, Integer.parseInt(s[0]), Integer.parseInt(s[1]))) {
      throw new IllegalArgumentException(v.prefix + " needs ScalarDB " + v.since + "+, not " + version);
    }
    if (v == DECOUPLED && backend.equals("cassandra")) {
      throw new IllegalArgumentException("metadata decoupling is JDBC only");
    }
    current = v;
    Variant.backend = backend;
  }

  static Variant current() {
    return current;
  }

  /** The case's name under this variant. */
  String caseId(String id) {
    return prefix.isEmpty() ? id : prefix + "-" + id;
  }

  void addProperties(Properties p) {
    properties.forEach(p::setProperty);
    // ScalarDB refuses decoupled tables on PostgreSQL and MySQL below REPEATABLE READ
    // (DB-CORE-10278 "does not guarantee consistent reads for virtual tables"); SQLite is
    // serializable already.
    if (this == DECOUPLED && !backend.equals("sqlite")) {
      p.setProperty("scalar.db.jdbc.isolation_level", "REPEATABLE_READ");
    }
  }

  /** {@code options} with this variant's table options added. */
  Map<String, String> tableOptions(Map<String, String> options) {
    Map<String, String> out = new LinkedHashMap<>(options);
    out.putAll(tableOptions);
    return out;
  }

  /**
   * Whether a transaction labelled {@code crashPoint} may show {@code got} (Coordinator state /
   * pending records, as {@link Truth} renders them) under this variant although the label says
   * otherwise: under one-phase commit a committed transaction that fell in one group writes
   * no Coordinator row.
   */
  boolean allows(String crashPoint, String got) {
    return this == ONE_PHASE && crashPoint.equals("committed") && got.equals("NONE/none");
  }

  /** The variants, for usage messages. */
  static List<String> names() {
    return List.of("none", "one-phase", "no-write-omission", "write-set", "decoupled");
  }
}
