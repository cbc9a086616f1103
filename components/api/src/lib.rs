pub fn placeholder_removed_soon() {}
