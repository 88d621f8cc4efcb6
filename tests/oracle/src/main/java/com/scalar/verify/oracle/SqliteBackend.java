package com.scalar.verify.oracle;

import com.scalar.db.config.DatabaseConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;

/**
 * SQLite: one file per case. Dumps use SQLite's online backup API (sqlite-jdbc's "backup to"), so a
 * dump is a consistent copy even while ScalarDB's connection pool is open. ScalarDB names SQLite
 * tables "ns$table".
 */
final class SqliteBackend implements Backend {
  @Override
  public String name() {
    return "sqlite";
  }

  @Override
  public String backupFileName() {
    return "backup.sqlite";
  }

  static String url(Path file) {
    return "jdbc:sqlite:" + file.toAbsolutePath() + "?busy_timeout=10000";
  }

  @Override
  public Properties freshDatabase(String caseId, Path work) throws Exception {
    Path file = work.resolve(caseId + ".live.sqlite");
    Files.deleteIfExists(file);
    Properties p = new Properties();
    // 1 KiB pages (SQLite's default is 4 KiB) keep the checked-in backups small; one page per
    // table and index is most of a case's file.
    p.setProperty(DatabaseConfig.CONTACT_POINTS, url(file) + "&page_size=1024");
    p.setProperty(DatabaseConfig.USERNAME, "");
    p.setProperty(DatabaseConfig.PASSWORD, "");
    return p;
  }

  @Override
  public Path dump(Properties live, Part part, Namespaces ns, Path dir, String label)
      throws Exception {
    Path out = dir.resolve(label + ".sqlite");
    Files.deleteIfExists(out);
    try (Connection c = DriverManager.getConnection(live.getProperty(DatabaseConfig.CONTACT_POINTS));
        Statement s = c.createStatement()) {
      s.executeUpdate("backup to " + out.toAbsolutePath());
    }
    return out;
  }

  @Override
  public void assemble(List<Path> parts, Namespaces ns, Path backupFile) throws Exception {
    Files.copy(parts.get(0), backupFile, StandardCopyOption.REPLACE_EXISTING);
    if (parts.size() == 1) {
      return;
    }
    // parts = [DATA, COORDINATOR]: the coordinator table comes from the second, older or newer, copy.
    String table = "\"" + ns.coordinator() + "$state\"";
    try (Connection c = DriverManager.getConnection("jdbc:sqlite:" + backupFile.toAbsolutePath());
        Statement s = c.createStatement()) {
      s.executeUpdate("ATTACH DATABASE '" + parts.get(1).toAbsolutePath() + "' AS coord");
      s.executeUpdate("DELETE FROM main." + table);
      s.executeUpdate("INSERT INTO main." + table + " SELECT * FROM coord." + table);
      s.executeUpdate("DETACH DATABASE coord");
      s.executeUpdate("VACUUM");
    }
  }

  @Override
  public Path dumpSchemas(Properties live, List<String> schemas, Namespaces ns, Path dir, String label)
      throws Exception {
    // A whole copy; assembleSchemas takes from it the tables of its schemas only.
    return dump(live, Part.ALL, ns, dir, label);
  }

  @Override
  public void assembleSchemas(Map<Path, List<String>> parts, Namespaces ns, Path backupFile)
      throws Exception {
    Path first = parts.keySet().iterator().next();
    Files.copy(first, backupFile, StandardCopyOption.REPLACE_EXISTING);
    try (Connection c = DriverManager.getConnection("jdbc:sqlite:" + backupFile.toAbsolutePath());
        Statement s = c.createStatement()) {
      for (Map.Entry<Path, List<String>> part : parts.entrySet()) {
        if (part.getKey().equals(first)) {
          continue;
        }
        s.executeUpdate("ATTACH DATABASE '" + part.getKey().toAbsolutePath() + "' AS part");
        List<String> tables = new ArrayList<>();
        try (ResultSet rs = s.executeQuery("SELECT name FROM part.sqlite_master WHERE type = 'table'")) {
          while (rs.next()) {
            String t = rs.getString(1);
            int sep = t.indexOf('$');
            if (sep > 0 && part.getValue().contains(t.substring(0, sep))) {
              tables.add("\"" + t + "\"");
            }
          }
        }
        for (String t : tables) {
          s.executeUpdate("DELETE FROM main." + t);
          s.executeUpdate("INSERT INTO main." + t + " SELECT * FROM part." + t);
        }
        s.executeUpdate("DETACH DATABASE part");
      }
      s.executeUpdate("VACUUM");
    }
  }

  @Override
  public Properties restore(Path backupFile, String caseId, Namespaces ns, Path work)
      throws Exception {
    Path copy = work.resolve(caseId + ".restored.sqlite");
    Files.copy(backupFile, copy, StandardCopyOption.REPLACE_EXISTING);
    Properties p = new Properties();
    // WAL on the copy only: ScalarDB's lazy recovery writes (on another pooled connection) while a
    // transactional Scan still holds its read cursor open; in SQLite's default rollback-journal
    // mode that write waits for the reader and the two deadlock until busy_timeout expires.
    p.setProperty(DatabaseConfig.CONTACT_POINTS, url(copy) + "&journal_mode=WAL");
    p.setProperty(DatabaseConfig.USERNAME, "");
    p.setProperty(DatabaseConfig.PASSWORD, "");
    return p;
  }
}
