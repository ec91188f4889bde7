-- Media details read from the content: the frames of a multi-frame image or video, what a
-- DICOM header says (JSON: modality, SOP class and instance, study and series UIDs, instance
-- number, position, transfer syntax, pixel spacing, bits allocated), the EXIF orientation that
-- turns the stored pixels into what a viewer shows, and every audio track of a video (JSON).
ALTER TABLE item ADD COLUMN frame_count BIGINT;
ALTER TABLE item ADD COLUMN dicom TEXT;
ALTER TABLE item ADD COLUMN orientation BIGINT;
ALTER TABLE item ADD COLUMN audio_tracks TEXT;
