"""Phone formats of a living photo: the pieces `spiritnet_tf.io.writers.AnimationWriter`
puts together for ``NAME.MP.jpg`` (Android Motion Photo) and ``NAME.JPG`` + ``NAME.MOV``
(Apple Live Photo).

* Motion Photo, format 1.0: a JPEG of the still (the animation's first frame) whose XMP
  (`motion_photo_xmp`) says Camera:MotionPhoto="1", Camera:MotionPhotoVersion="1",
  Camera:MotionPhotoPresentationTimestampUs="0" and lists, in a Container:Directory,
  the primary image/jpeg item and the video/mp4 MotionPhoto item with Item:Length = the
  MP4's exact byte length; the MP4 (H.264, yuv420p, every frame) is appended last.
* Live Photo: a JPEG and a QuickTime MOV sharing one UUID, in the JPEG as Apple's
  MakerNote tag 0x0011 (ContentIdentifier, `apple_maker_note`) and in the MOV as the
  metadata key ``com.apple.quicktime.content.identifier`` (mdta; written by ffmpeg
  with ``-movflags use_metadata_tags``, `LIVE_PHOTO_KEY`). The still-image-time
  metadata track of phone-made Live Photos is not written.

Recognition by a phone's gallery was not tested here; the files are checked by parsing
them back (XML by namespace, the appended MP4, exiftool).
"""

import io
import struct

from PIL import Image

from spiritnet_tf.limits import MAX_JPEG_SIDE

__all__ = ["motion_photo_xmp", "motion_photo", "apple_maker_note", "live_photo_jpeg",
           "check_jpeg_size", "LIVE_PHOTO_KEY", "STILL_QUALITY"]

CAMERA_NS = "http://ns.google.com/photos/1.0/camera/"
CONTAINER_NS = "http://ns.google.com/photos/1.0/container/"
ITEM_NS = "http://ns.google.com/photos/1.0/container/item/"
LIVE_PHOTO_KEY = "com.apple.quicktime.content.identifier"
STILL_QUALITY = 95  # JPEG quality of the still
_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\0"
_EXIF_HEADER = b"Exif\0\0"


def check_jpeg_size(height, width, path):
    """ValueError naming ``path`` when a JPEG of height x width cannot be written."""
    if max(height, width) > MAX_JPEG_SIDE:
        raise ValueError(f"{path}: the frames are {width}x{height}, but a JPEG side is at most "
                         f"{MAX_JPEG_SIDE:,} px; write .mp4, .gif or a folder of PNGs instead")


def motion_photo_xmp(video_length):
    """The XMP packet (bytes) of a Motion Photo whose appended MP4 is ``video_length`` bytes."""
    xml = f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:Camera="{CAMERA_NS}"
    xmlns:Container="{CONTAINER_NS}"
    xmlns:Item="{ITEM_NS}"
    Camera:MotionPhoto="1"
    Camera:MotionPhotoVersion="1"
    Camera:MotionPhotoPresentationTimestampUs="0">
   <Container:Directory>
    <rdf:Seq>
     <rdf:li rdf:parseType="Resource">
      <Container:Item Item:Mime="image/jpeg" Item:Semantic="Primary" Item:Length="0" Item:Padding="0"/>
     </rdf:li>
     <rdf:li rdf:parseType="Resource">
      <Container:Item Item:Mime="video/mp4" Item:Semantic="MotionPhoto" Item:Length="{int(video_length)}" Item:Padding="0"/>
     </rdf:li>
    </rdf:Seq>
   </Container:Directory>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""
    return xml.encode("utf-8")


def _insert_app1(jpeg, header, payload):
    """``jpeg`` with an APP1 segment (``header`` + ``payload``) after SOI and any APP0."""
    body = header + payload
    if len(body) + 2 > 0xFFFF:
        raise ValueError("APP1 segment too large for a JPEG")
    segment = b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
    position = 2  # after SOI
    if jpeg[2:4] == b"\xff\xe0":  # keep JFIF's APP0 first
        position += 2 + struct.unpack(">H", jpeg[4:6])[0]
    return jpeg[:position] + segment + jpeg[position:]


def _jpeg(still, exif=None):
    buffer = io.BytesIO()
    options = {"exif": exif} if exif is not None else {}
    Image.fromarray(still).save(buffer, format="JPEG", quality=STILL_QUALITY, **options)
    return buffer.getvalue()


def motion_photo(still, video):
    """The bytes of a Motion Photo: the JPEG of ``still`` (uint8 [H, W, 3]) with its XMP,
    then ``video`` (the MP4's bytes)."""
    return _insert_app1(_jpeg(still), _XMP_HEADER, motion_photo_xmp(len(video))) + video


def apple_maker_note(content_identifier):
    """Apple's MakerNote (bytes) holding only tag 0x0011, ContentIdentifier (ASCII).

    Layout as Apple writes it: "Apple iOS\\0", version 1 (big-endian uint16), "MM",
    then one IFD entry; offsets count from the start of the maker note.
    """
    text = content_identifier.encode("ascii") + b"\0"
    header = b"Apple iOS\0" + struct.pack(">H", 1) + b"MM"
    entries = 1
    data_offset = len(header) + 2 + 12 * entries + 4
    ifd = struct.pack(">H", entries) + struct.pack(">HHII", 0x0011, 2, len(text), data_offset)
    return header + ifd + struct.pack(">I", 0) + text


def live_photo_jpeg(still, content_identifier):
    """JPEG bytes of ``still`` whose Exif MakerNote carries ``content_identifier``."""
    exif = Image.Exif()  # readers know Apple's maker note by its "Apple iOS" header
    exif.get_ifd(0x8769)[0x927C] = apple_maker_note(content_identifier)
    return _jpeg(still, exif=exif.tobytes())
