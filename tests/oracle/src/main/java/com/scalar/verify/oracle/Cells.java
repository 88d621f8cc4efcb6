package com.scalar.verify.oracle;

import com.scalar.db.io.DataType;
import java.util.ArrayList;
import java.util.List;

/**
 * The values a Put writes, in the harness's own form: {@code Records.put} turns them into the
 * line's Put (builders on 3.6+, the Value API on 3.4), so the workload is written once.
 */
final class Cells {
  /** One value; {@code value} is null for a NULL (TEXT only: the harness writes no other NULL). */
  record Cell(String name, DataType type, Object value) {}

  private final List<Cell> cells = new ArrayList<>();

  private Cells add(String name, DataType type, Object value) {
    cells.add(new Cell(name, type, value));
    return this;
  }

  Cells bigInt(String name, long v) {
    return add(name, DataType.BIGINT, v);
  }

  Cells integer(String name, int v) {
    return add(name, DataType.INT, v);
  }

  Cells text(String name, String v) {
    return add(name, DataType.TEXT, v);
  }

  Cells bool(String name, boolean v) {
    return add(name, DataType.BOOLEAN, v);
  }

  Cells dbl(String name, double v) {
    return add(name, DataType.DOUBLE, v);
  }

  Cells blob(String name, byte[] v) {
    return add(name, DataType.BLOB, v);
  }

  List<Cell> list() {
    return cells;
  }
}
