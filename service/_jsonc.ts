/**
 * JSONC reading for the service config: a syntax tree with offsets so
 * that every complaint can name the file, line and column.
 *
 * @module
 */
import {
  type Node,
  type ParseError,
  parseTree,
  printParseErrorCode,
} from "jsonc-parser";

/** A line and column, both counted from 1. */
export interface Position {
  line: number;
  column: number;
}

/** Converts a character offset in `text` into a 1-based line:column. */
export function positionOf(text: string, offset: number): Position {
  let line = 1;
  let start = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      start = i + 1;
    }
  }
  return { line, column: offset - start + 1 };
}

/** A syntax problem at an offset. */
export interface SyntaxProblem {
  offset: number;
  message: string;
}

/**
 * Parses JSONC (comments and trailing commas allowed) into a tree, or
 * returns the first syntax problem, including a duplicate object key.
 */
export function parseJsoncTree(
  text: string,
): { tree: Node } | { problem: SyntaxProblem } {
  if (text.trim() === "") {
    return { problem: { offset: 0, message: "the file is empty" } };
  }
  const errors: ParseError[] = [];
  const tree = parseTree(text, errors, {
    allowTrailingComma: true,
    disallowComments: false,
  });
  if (errors.length > 0) {
    const first = errors[0];
    return {
      problem: {
        offset: first.offset,
        message: `invalid JSONC (${printParseErrorCode(first.error)})`,
      },
    };
  }
  if (tree === undefined) {
    return { problem: { offset: 0, message: "the file is empty" } };
  }
  const duplicate = findDuplicateKey(tree);
  if (duplicate !== null) return { problem: duplicate };
  return { tree };
}

function findDuplicateKey(node: Node): SyntaxProblem | null {
  if (node.type === "object") {
    const seen = new Set<string>();
    for (const property of node.children ?? []) {
      const keyNode = property.children?.[0];
      const key = String(keyNode?.value);
      if (seen.has(key)) {
        return {
          offset: keyNode?.offset ?? property.offset,
          message: `duplicate key "${key}"`,
        };
      }
      seen.add(key);
    }
  }
  for (const child of node.children ?? []) {
    const found = findDuplicateKey(child);
    if (found !== null) return found;
  }
  return null;
}
