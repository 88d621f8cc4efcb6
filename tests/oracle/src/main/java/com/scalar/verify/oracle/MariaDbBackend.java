package com.scalar.verify.oracle;

import com.scalar.db.config.DatabaseConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;

/**
 * MariaDB: a ScalarDB namespace is a database, so cases share the server one after the other: each
 * case drops the case databases before creating its own. Backups are mysqldump files
 * (--single-transaction); a torn backup is a dump of the data and metadata databases taken at one
 * moment followed by a dump of the Coordinator database taken at another.
 */
final class MariaDbBackend implements Backend {
  private final String host;
  private final int port;
  private final String user;
  private final String password;
  private final String bin;

  MariaDbBackend(String host, int port, String user, String password, String bin) {
    this.host = host;
    this.port = port;
    this.user = user;
    this.password = password;
    this.bin = bin;
  }

  @Override
  public boolean foldsIdCase(String caseName) {
    return true;
  }

  @Override
  public String name() {
    return "mariadb";
  }

  @Override
  public String backupFileName() {
    return "backup.mysql.sql";
  }

  private String url() {
    return "jdbc:mariadb://" + host + ":" + port + "/";
  }

  private void dropAll(Namespaces ns) throws Exception {
    try (Connection c = DriverManager.getConnection(url(), user, password);
        Statement s = c.createStatement()) {
      for (String db : databases(ns, Part.ALL)) {
        s.executeUpdate("DROP DATABASE IF EXISTS `" + db + "`");
      }
    }
  }

  private static List<String> databases(Namespaces ns, Part part) {
    List<String> out = new ArrayList<>();
    if (part != Part.COORDINATOR) {
      out.addAll(ns.data());
      out.add(ns.metadata());
    }
    if (part != Part.DATA) {
      out.add(ns.coordinator());
    }
    return out;
  }

  private Properties props() {
    Properties p = new Properties();
    p.setProperty(DatabaseConfig.CONTACT_POINTS, url());
    p.setProperty(DatabaseConfig.USERNAME, user);
    p.setProperty(DatabaseConfig.PASSWORD, password);
    return p;
  }

  private List<String> client(String name) {
    return new ArrayList<>(List.of(
        External.tool(bin, name), "--protocol=TCP", "-h", host, "-P", Integer.toString(port), "-u", user));
  }

  @Override
  public Properties freshDatabase(String caseId, Path work) throws Exception {
    // Every case uses the same database names; the previous case's were released already.
    return props();
  }

  @Override
  public Path dump(Properties live, Part part, Namespaces ns, Path dir, String label) throws Exception {
    return mysqldump(databases(ns, part), dir.resolve(label + ".mysql.sql"));
  }

  /** mysqldump of some databases alone, at this instant (a per-namespace cut's part). */
  @Override
  public Path dumpSchemas(Properties live, List<String> schemas, Namespaces ns, Path dir, String label)
      throws Exception {
    return mysqldump(schemas, dir.resolve(label + ".mysql.sql"));
  }

  /** One consistent mysqldump of {@code databases} (no dump date) into {@code out}. */
  private Path mysqldump(List<String> databases, Path out) throws Exception {
    List<String> cmd = client("mysqldump");
    cmd.addAll(List.of("--single-transaction", "--skip-dump-date", "--databases"));
    cmd.addAll(databases);
    External.run(cmd, Map.of("MYSQL_PWD", password), null, out);
    return out;
  }

  /** The parts one after the other, as a user joins the dumps of a per-database backup. */
  @Override
  public void assembleSchemas(Map<Path, List<String>> parts, Namespaces ns, Path backupFile)
      throws Exception {
    assemble(new ArrayList<>(parts.keySet()), ns, backupFile);
  }

  @Override
  public void assemble(List<Path> parts, Namespaces ns, Path backupFile) throws Exception {
    Files.deleteIfExists(backupFile);
    for (Path p : parts) {
      Files.write(backupFile, Files.readAllBytes(p), StandardOpenOption.CREATE, StandardOpenOption.APPEND);
    }
  }

  @Override
  public Properties restore(Path backupFile, String caseId, Namespaces ns, Path work) throws Exception {
    dropAll(ns);
    External.run(client("mysql"), Map.of("MYSQL_PWD", password), backupFile, null);
    return props();
  }

  @Override
  public void release(String caseId, Namespaces ns) throws Exception {
    dropAll(ns);
  }
}
